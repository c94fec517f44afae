"""Reports built from the store: the run summary, Markdown, JSON, JUnit XML, HTML and SVG, and the
shared formatting they use."""
