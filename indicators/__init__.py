"""Indicator engine, catalog, alerts and the feeds that drive them."""
