//! Guard-paged, pooled fiber stacks (in progress).
