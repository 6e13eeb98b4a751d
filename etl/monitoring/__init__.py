"""The outcomes loop: confirmed diagnoses joined to what each release predicted (its realized performance and alarm), and the training data grown from them."""
