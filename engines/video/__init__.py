"""Frames in: video files, image folders and the synthetic endoscopy generator."""
