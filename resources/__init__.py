"""Files shipped with the app (icons, the Foundation bootstrap list), read through
importlib.resources so they work installed, in a wheel and in the frozen build."""
