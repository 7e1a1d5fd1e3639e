"""The studio's pages: one file each."""
