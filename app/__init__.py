"""Gradio Blocks UI: one module per tab, thin; the work happens in engine/ and training/."""
