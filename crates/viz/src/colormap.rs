//! Viridis (van der Walt and Smith, matplotlib's default): perceptually uniform, readable in
//! grayscale and by colour-blind readers.

/// Viridis sampled at nine evenly spaced points; colours between are interpolated.
const VIRIDIS: [[f32; 3]; 9] = [
    [68.0, 1.0, 84.0],
    [71.0, 44.0, 122.0],
    [59.0, 81.0, 139.0],
    [44.0, 113.0, 142.0],
    [33.0, 144.0, 141.0],
    [39.0, 173.0, 129.0],
    [92.0, 200.0, 99.0],
    [170.0, 220.0, 50.0],
    [253.0, 231.0, 37.0],
];

/// The colour of `t` in `[0, 1]` (clamped).
pub fn viridis(t: f32) -> [u8; 3] {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let position = t * (VIRIDIS.len() - 1) as f32;
    let i = (position.floor() as usize).min(VIRIDIS.len() - 2);
    let f = position - i as f32;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    [0, 1, 2].map(|c| (a[c] + (b[c] - a[c]) * f).round() as u8)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ends_and_middle() {
        assert_eq!(super::viridis(0.0), [68, 1, 84]);
        assert_eq!(super::viridis(1.0), [253, 231, 37]);
        assert_eq!(super::viridis(0.5), [33, 144, 141]);
        assert_eq!(super::viridis(f32::NAN), [68, 1, 84]);
    }
}
