"""Page sections, one module each: what a page draws that is more than a few widgets."""
