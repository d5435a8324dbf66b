//! Using trained networks: ImageNet's class names ([`imagenet`]), classifying image files with
//! the pretrained EfficientNet-Lite0 or a model `train` saved ([`predict`]), and looking inside
//! them: feature maps, filters, Grad-CAM and occlusion ([`visualize`], [`explain`]).
//!
//! Not here: network definitions (`models`) or training (`train`).

pub mod explain;
pub mod imagenet;
pub mod predict;
pub mod visualize;
