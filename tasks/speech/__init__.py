"""Speech recognition (CTC): synthesized commands and numbers offline by default, or LibriSpeech, manifests, HF."""
