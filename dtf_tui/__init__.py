"""dtf's terminal console (Textual). Imports dtf_core; dtf_core never imports this."""
