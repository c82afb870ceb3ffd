//! A tower `Layer` that caches HTTP responses read-through (implemented in a later step).
