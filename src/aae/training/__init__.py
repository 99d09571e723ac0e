"""A run's life: the trainer, its optimizers, devices, checkpoints, resume, logs and processes."""
