"""The console's own widgets: each owns its bindings, default CSS and messages."""
