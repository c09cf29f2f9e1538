"""What every layer uses: the error type and option checks, pretrained-model loading, figures."""
