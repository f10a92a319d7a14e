"""Where qlab keeps its files: data and artifact folders, atomic writes, the shipped MNIST."""
