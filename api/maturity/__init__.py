"""Maturity scores: a framework of controls scored from gathered evidence and declarations,
one immutable snapshot per establishment and day, peers, and the fixes that gain most."""
