"""The console's screens; each shows the app's latest snapshot its own way."""
