class OnceProcessor:
    """Apply each event once, however often and in whatever order it arrives."""

    def __init__(self, apply):
        self.apply = apply
        self.done = set()  # ids already applied (a real app stores them with its data)

    def handle(self, event):
        if event.seq in self.done:
            return False  # a redelivery: acknowledge it, do nothing
        self.apply(event)
        self.done.add(event.seq)
        return True
