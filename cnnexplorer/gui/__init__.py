"""The PySide6 desktop front end; it runs cnnexplorer.core computations in workers."""
