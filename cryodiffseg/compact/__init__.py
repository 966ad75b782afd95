"""The compact diffusion backbone: its architecture, training data and training; the shipped weights in shipped/."""
