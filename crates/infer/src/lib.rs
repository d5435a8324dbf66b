//! Using trained networks: ImageNet's class names ([`imagenet`]), and classifying image files
//! with the pretrained EfficientNet-Lite0 or a model `train` saved ([`predict`]).
//!
//! Not here: network definitions (`models`) or training (`train`).

pub mod imagenet;
pub mod predict;
