"""`tradelane demo`: the hub, marketplace and OMS sandboxes, a sample catalog and simulated traffic."""
