"""Turning render requests into posts: prompts, output repair and validation, moderation."""
