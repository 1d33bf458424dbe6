"""The browser side: the only package of review/ that imports streamlit.

- :mod:`review.ui.shell`: the app's frame: the connection, sign-in and sessions (cookie), the sidebar, the
  page and dataset guards, small drawing helpers (plural, badge, show_text, error, downloads), the
  keyboard script.
- :mod:`review.ui.shortcuts`: which key each button carries (pure).
- :mod:`review.ui.views`: whole page sections, one module each, that more than a page or more than one
  task draws (the review cards, the Audit page's tabs).
"""
