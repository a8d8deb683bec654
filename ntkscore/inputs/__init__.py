"""What the network sees: image batches (or random inputs) and their adversarial perturbations."""
