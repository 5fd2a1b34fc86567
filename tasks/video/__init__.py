"""Video activity recognition: an LRCN (a CNN per frame, the core LSTM over time) on real video files."""
