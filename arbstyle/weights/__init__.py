"""Readers and converters that turn released weight files into our networks' parameters."""
