"""The encoder-decoder network: plain ``nn.Module`` classes, no Lightning."""
