"""The XTTS family: Coqui XTTS (GPT-2 + HiFi-GAN decoder) through Coqui's own Xtts class."""
