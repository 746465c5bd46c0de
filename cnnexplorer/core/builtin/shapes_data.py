SHAPE_CLASSES = ("circle","square","triangle","star","cross","ring")
