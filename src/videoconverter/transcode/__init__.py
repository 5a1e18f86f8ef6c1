"""Probing, output geometry, the FFmpeg argument list (pure) and running FFmpeg (separately)."""
