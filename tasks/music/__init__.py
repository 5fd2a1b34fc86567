"""Music: melody generation (events at 16th notes) and polyphonic piano rolls (JSB Chorales)."""
