"""The asset model of the Canton Tower scenic area: inventory, zones, route, 3D geometry."""
