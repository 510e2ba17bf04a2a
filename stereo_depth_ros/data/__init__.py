"""Data without ROS: the synthetic stereo generator (synthetic, raycast, textures,
photometric), dataset readers (readers, middlebury) and file formats (formats).
See docs/data.md."""
