"""What the notebooks use: clients that record arrivals, the widget kit,
experiments and plots, and the exercise checkers. The servers live in
``servers``; nothing here is imported by them."""
