"""Forecasting: the classic Keras LSTM example (LSTM(50) -> Dense(1), Adam, MSE) on real series, CO2 by default."""
