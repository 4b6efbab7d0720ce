"""worldfeed: a streaming simulation of a living social world, rendered into social media."""
