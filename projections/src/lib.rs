//! The read side of Wangge (being built).
