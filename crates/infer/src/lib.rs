//! Using trained networks: the pretrained EfficientNet-Lite0 and its weights ([`pretrained`]),
//! ImageNet's class names ([`imagenet`]), and classifying image files with either that network or
//! a model `train` saved ([`predict`]).
//!
//! Not here: network definitions (`models`) or training (`train`).

pub mod imagenet;
pub mod predict;
pub mod pretrained;
