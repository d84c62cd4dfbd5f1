"""Device profiles (Raspberry Pi, Jetson, x86), bundles and deployment (``edge_infer.devices``)."""
