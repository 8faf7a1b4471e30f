"""Judging models: `arbstyle evaluate` (content and style loss, LPIPS, FID, ArtFID), the metrics and the FID
feature extractor it uses, and the other projects' models it compares against."""
