"""The coqui-pipeline family: a Coqui acoustic model and a Coqui vocoder served as one (Tacotron2 + HiFi-GAN)."""
