"""The built-in plugins of ent. Each subpackage registers through the same hooks as a third party."""
