"""What the console shows, built once for every place it is shown.

The snapshot dataclasses, the code that reads them out of a Store, the trend
analysis and their JSON form live here, in ``dtf_core``, so that ``dtf-tui``
over a local database and ``dtf-core serve`` (for attached consoles) build the
same objects with the same code; the console decodes what the service sends
back into the same types (:mod:`~dtf_core.service.views.wire`). Nothing here
imports Textual or tornado.
"""
