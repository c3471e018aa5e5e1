"""Auto-scaling: the pools' control loop, the launches it tracks and the launcher port."""
