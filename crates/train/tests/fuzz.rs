//! The config loader fed mutated configs and `--set` overrides: an error is fine, a panic or a
//! hang is not.

use testkit::fuzz;
use train::config::TrainConfig;

#[test]
fn the_config_loader_survives_mutated_configs() {
    let seeds = [
        include_str!("../../../configs/cifar.toml"),
        include_str!("../../../configs/cifar-transfer.toml"),
        "epochs = 3\n[optimizer]\nname = \"sgd\"\nnesterov = true\n",
    ]
    .map(|text| text.as_bytes().to_vec());
    fuzz("config", &seeds, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        if let Ok(config) = TrainConfig::parse(&text, &[]) {
            let again = TrainConfig::parse(&config.to_toml(), &[]).expect("resolved config loads");
            assert_eq!(again, config);
        }
        let overrides: Vec<String> = text.lines().map(String::from).collect();
        let _ = TrainConfig::parse("", &overrides);
    });
}
