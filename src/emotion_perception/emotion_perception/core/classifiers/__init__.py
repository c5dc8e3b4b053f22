"""Built-in plugins of this extension point."""
