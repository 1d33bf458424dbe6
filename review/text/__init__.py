"""review.text."""
