"""The Dash app of scenic-twin: wall display, patrol and supervisor views."""
