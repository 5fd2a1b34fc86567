"""Translation: numbers in words (offline default) or any parallel corpus, read as subword pairs for an LSTM encoder-decoder."""
