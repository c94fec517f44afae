"""`dtf-core test` and pytest tasks: the pytest plugin, JUnit XML parsing, the per-test result
stream and crash salvage, and splitting a suite into chunks."""
