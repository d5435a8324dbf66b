//! The training configuration: a TOML file, every key optional with the tutorial's defaults,
//! unknown keys rejected, and `--set key=value` overrides applied before parsing.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use models::Architecture;

use crate::network::TestTimeAugment;

/// The largest `data.image_size` and `transfer.resolution`: 50,000 images at 1024x1024 are
/// already 157 GB in memory, and a much larger side fails to allocate (an abort, not an error).
pub const MAX_IMAGE_SIZE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("--set {0}: expected key=value, for example --set optimizer.lr=0.0005")]
    Override(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Seeds the weights, the split, the shuffles and dropout.
    pub seed: u64,
    /// Most epochs to train (early stopping may end sooner).
    pub epochs: usize,
    pub batch_size: usize,
    /// Fraction of the training images held out for validation; 0 trains on all of them, with
    /// no validation after each epoch, and reports the test split alone (which the data must
    /// have).
    pub valid_size: f64,
    /// Epochs without a better val_loss before stopping; 0 never stops early.
    pub early_stopping_patience: usize,
    /// Label smoothing of the training loss (0 turns it off; 0.1 is common).
    pub label_smoothing: f32,
    /// Validate and save an exponential moving average of the weights with this decay per step
    /// (0 turns it off; 0.99-0.999 is common).
    pub ema_decay: f64,
    /// Every this many steps, move a running average of the weights towards them and the weights
    /// to it (airbench's Lookahead; 0 turns it off, airbench uses 5); the last step ends on the
    /// average.
    pub lookahead_steps: usize,
    /// How much of itself the Lookahead average keeps at the last step; it rises as the cube of
    /// the share of the steps taken (airbench: 0.95⁵ ≈ 0.774).
    pub lookahead_decay: f64,
    /// Runs are written to `<output_dir>/<config name>-<n>`.
    pub output_dir: PathBuf,
    /// Fit training into this many minutes of wall time: the number of epochs is chosen from the
    /// speed of the first steps (at most `epochs`); unset trains `epochs`.
    pub time_budget_minutes: Option<f64>,
    /// Evaluate on each image and its mirror image, averaging the predictions.
    pub test_time_flip: bool,
    /// Also evaluate on each image shifted this many pixels down-right and up-left; 0 does not.
    pub test_time_translate: usize,
    /// Devices to train on together, each taking an equal share of every batch.
    pub devices: usize,
    /// The precision of the CPU kernels' matrix products (see [`MatmulPrecision`]).
    pub matmul_precision: MatmulPrecision,
    pub optimizer: OptimizerConfig,
    pub schedule: ScheduleConfig,
    pub augment: data::augment::Augment,
    /// The network: `name` (see [`Architecture::NAMES`]) and its settings.
    pub model: Architecture,
    pub data: DataConfig,
    pub transfer: TransferConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            epochs: 20,
            batch_size: 128,
            valid_size: 0.25,
            early_stopping_patience: 5,
            label_smoothing: 0.0,
            ema_decay: 0.0,
            lookahead_steps: 0,
            lookahead_decay: 0.774,
            output_dir: PathBuf::from("runs"),
            time_budget_minutes: None,
            test_time_flip: false,
            test_time_translate: 0,
            devices: 1,
            matmul_precision: MatmulPrecision::Float32,
            optimizer: OptimizerConfig::default(),
            schedule: ScheduleConfig::default(),
            augment: data::augment::Augment::default(),
            model: Architecture::default(),
            data: DataConfig::default(),
            transfer: TransferConfig::default(),
        }
    }
}

/// How the CPU kernels' convolutions multiply (every one but the depthwise ones; see
/// [`kernels::set_matmul_precision`]): as with PyTorch's `torch.set_float32_matmul_precision`,
/// weights and everything else stay f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatmulPrecision {
    Float32,
    /// Operands rounded to bfloat16, sums in f32, on CPUs with AMX tiles (Intel Xeons since
    /// Sapphire Rapids); f32 elsewhere.
    Bfloat16,
}

impl From<MatmulPrecision> for kernels::Precision {
    fn from(precision: MatmulPrecision) -> Self {
        match precision {
            MatmulPrecision::Float32 => Self::Float32,
            MatmulPrecision::Bfloat16 => Self::Bfloat16,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerName {
    Adam,
    Adamw,
    Sgd,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerConfig {
    pub name: OptimizerName,
    pub lr: f64,
    /// Adam/AdamW: numerical-stability term (Keras' default 1e-7).
    pub epsilon: f32,
    pub beta_1: f32,
    pub beta_2: f32,
    /// L2 penalty (Adam, SGD) or decoupled decay (AdamW); 0 disables it.
    pub weight_decay: f32,
    /// SGD only.
    pub momentum: f64,
    /// SGD only.
    pub nesterov: bool,
    /// SGD only: `lr` and `weight_decay` count per 1,024 examples, airbench's parametrization,
    /// so that they mean the same at any batch size and momentum: each step moves the weights
    /// by `lr · batch_size / (1024 · (1 + 1/(1 − momentum)))` times the batch's mean gradient,
    /// and decays them by `weight_decay` times the same factor.
    pub per_1024_examples: bool,
    /// The learning rate of BatchNorm's shifts (biases) as a multiple of `lr` (airbench's 64);
    /// their weight decay per step stays that of the other weights.
    pub batch_norm_bias_lr_scale: f64,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            name: OptimizerName::Adam,
            lr: 1e-3,
            epsilon: 1e-7,
            beta_1: 0.9,
            beta_2: 0.999,
            weight_decay: 0.0,
            momentum: 0.9,
            nesterov: false,
            per_1024_examples: false,
            batch_norm_bias_lr_scale: 1.0,
        }
    }
}

impl OptimizerConfig {
    /// The same optimizer with `lr` and `weight_decay` for Burn's optimizers, which take a
    /// batch's mean gradient and decay the weights by `lr · weight_decay` a step: as they are
    /// unless they count per 1,024 examples.
    pub fn per_batch(&self, batch_size: usize) -> OptimizerConfig {
        if !self.per_1024_examples {
            return self.clone();
        }
        // airbench: a step of `lr / kilo` per summed gradient is `lr · batch / kilo` per mean
        // gradient; its decay per step, `weight_decay · batch / kilo`, is `lr' · weight_decay /
        // lr` with that rate `lr'`.
        let kilo = 1024.0 * (1.0 + 1.0 / (1.0 - self.momentum));
        OptimizerConfig {
            lr: self.lr * batch_size as f64 / kilo,
            weight_decay: (f64::from(self.weight_decay) / self.lr) as f32,
            per_1024_examples: false,
            ..self.clone()
        }
    }

    /// BatchNorm shifts' learning-rate multiple, when it is not 1.
    pub fn shift_scale(&self) -> Option<f64> {
        (self.batch_norm_bias_lr_scale != 1.0).then_some(self.batch_norm_bias_lr_scale)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleName {
    /// `optimizer.lr` throughout (after the warm-up).
    Constant,
    /// From `optimizer.lr` down to `final_lr_fraction` of it along a half cosine.
    Cosine,
    /// From `optimizer.lr` down to `final_lr_fraction` of it in a straight line (with a warm-up,
    /// a one-cycle schedule).
    Linear,
    /// airbench's: up in a straight line from `start_lr_fraction` of `optimizer.lr` to all of it
    /// over the first `peak_fraction` of the steps, then down in a straight line to
    /// `final_lr_fraction` of it at the last step (`warmup_epochs` does not apply).
    Triangle,
}

/// The learning rate at each step of a stage: a linear warm-up from 0, then the named decay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    pub name: ScheduleName,
    /// Length of the warm-up in epochs (fractions allowed).
    pub warmup_epochs: f64,
    /// The last step's learning rate as a fraction of `optimizer.lr`.
    pub final_lr_fraction: f64,
    /// Triangle only: the first step's learning rate as a fraction of `optimizer.lr`.
    pub start_lr_fraction: f64,
    /// Triangle only: where the learning rate peaks, as a fraction of the stage's steps.
    pub peak_fraction: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            name: ScheduleName::Constant,
            warmup_epochs: 0.0,
            final_lr_fraction: 0.0,
            start_lr_fraction: 0.2,
            peak_fraction: 0.2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// A local copy of the data (CIFAR-10 binary folder, image folder tree, or a `.tar.gz` of
    /// either); unset means download CIFAR-10 into the cache.
    pub dir: Option<PathBuf>,
    /// Where CIFAR-10 is downloaded from, and its MD5.
    pub url: String,
    pub md5: String,
    /// Cache for downloads and unpacked archives; unset means `$CONVKIT_CACHE` or the XDG cache.
    pub cache_dir: Option<PathBuf>,
    /// Side that images from folders are resized to.
    pub image_size: usize,
    /// Leave out files that do not decode or cannot be read (one warning each) instead of stopping.
    pub skip_broken_images: bool,
}

impl DataConfig {
    /// The cache directory: `cache_dir`, else `$CONVKIT_CACHE` or the XDG cache.
    pub fn cache(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(data::fetch::cache_dir)
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dir: None,
            url: data::source::CIFAR10_URL.to_string(),
            md5: data::source::CIFAR10_MD5.to_string(),
            cache_dir: None,
            image_size: 32,
            skip_broken_images: true,
        }
    }
}

/// The transfer recipe (a pretrained `model.name`, `efficientnet_lite0` to `efficientnet_lite2`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransferConfig {
    /// Side the images are resized to before the backbone (ImageNet used 224).
    pub resolution: usize,
    /// The network's ImageNet weights; unset means the cached copy (fetched once).
    pub weights: Option<PathBuf>,
    /// Train the backbone's last this many MBConv blocks (and its head convolution) with the new
    /// head, on the cached maps that enter them; 0 freezes the whole backbone.
    pub train_blocks: usize,
    /// Keep what the frozen part computes (pooled features, or the maps entering the trained
    /// blocks) on disk and reuse it in later runs.
    pub cache_features: bool,
    /// Images per batch while extracting features.
    pub extract_batch_size: usize,
    /// Second stage: unfreeze this many of the last MBConv blocks (and the head convolution) and
    /// fine-tune them with the new head; 0 skips the stage.
    pub finetune_blocks: usize,
    pub finetune_epochs: usize,
    pub finetune_lr: f64,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            resolution: 224,
            weights: None,
            train_blocks: 0,
            cache_features: true,
            extract_batch_size: 64,
            finetune_blocks: 0,
            finetune_epochs: 0,
            finetune_lr: 1e-4,
        }
    }
}

impl TransferConfig {
    /// Whether the second stage (fine-tuning on the images) runs.
    pub fn second_stage(&self) -> bool {
        self.finetune_blocks > 0 && self.finetune_epochs > 0
    }
}

impl TrainConfig {
    /// The moving average's decay, when there is one.
    pub fn ema(&self) -> Option<f64> {
        (self.ema_decay > 0.0).then_some(self.ema_decay)
    }

    /// Lookahead's pull, when there is one.
    pub fn lookahead(&self) -> Option<crate::lookahead::Pull> {
        (self.lookahead_steps > 0).then_some(crate::lookahead::Pull {
            every: self.lookahead_steps,
            decay: self.lookahead_decay,
        })
    }

    /// Whether a run keeps an average of the weights (the moving average or Lookahead's), saved
    /// with the training state.
    pub fn keeps_average(&self) -> bool {
        self.ema().is_some() || self.lookahead().is_some()
    }

    /// The training loss's label smoothing, when there is any.
    pub fn smoothing(&self) -> Option<f32> {
        (self.label_smoothing > 0.0).then_some(self.label_smoothing)
    }

    /// The views the final evaluation averages over.
    pub fn test_time_augment(&self) -> TestTimeAugment {
        TestTimeAugment {
            flip: self.test_time_flip,
            translate: self.test_time_translate,
        }
    }

    /// Read `path`, apply `overrides` (`key=value`, dotted keys for tables, values in TOML syntax
    /// or bare strings), and check the result.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        Self::parse(&text, overrides).map_err(|e| match e {
            ConfigError::Invalid { message, .. } => ConfigError::Invalid {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Like [`TrainConfig::load`], from the file's text; errors name the file as `<config>`.
    pub fn parse(text: &str, overrides: &[String]) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: PathBuf::from("<config>"),
            message,
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| invalid(located(text, &e)))?;
        for entry in overrides {
            let (key, value) = entry
                .split_once('=')
                .ok_or_else(|| ConfigError::Override(entry.clone()))?;
            set_dotted(&mut table, key.trim(), parse_value(value.trim()))
                .map_err(|m| invalid(format!("--set {entry}: {m}")))?;
        }
        moved_keys(&mut table);
        let config: TrainConfig = table
            .try_into()
            .map_err(|e: toml::de::Error| invalid(e.message().to_string()))?;
        config.check().map_err(invalid)?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if self.batch_size == 0 {
            return Err("batch_size must be at least 1".into());
        }
        if self.epochs == 0 {
            return Err("epochs must be at least 1".into());
        }
        if self.devices == 0 {
            return Err("devices must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.valid_size) {
            return Err(format!(
                "valid_size must be in [0, 1), got {}",
                self.valid_size
            ));
        }
        if self.valid_size == 0.0 && self.early_stopping_patience > 0 {
            return Err("early stopping watches the validation loss: with valid_size = 0 set early_stopping_patience = 0".into());
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(format!(
                "label_smoothing must be in [0, 1), got {}",
                self.label_smoothing
            ));
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return Err(format!(
                "ema_decay must be in [0, 1), got {}",
                self.ema_decay
            ));
        }
        if !(0.0..=1.0).contains(&self.lookahead_decay) {
            return Err(format!(
                "lookahead_decay must be in [0, 1], got {}",
                self.lookahead_decay
            ));
        }
        if self.ema().is_some() && self.lookahead().is_some() {
            return Err("ema_decay and lookahead_steps are two ways of averaging the weights: set one of them to 0".into());
        }
        self.check_transfer()?;
        if let Some(minutes) = self.time_budget_minutes
            && !(minutes.is_finite() && minutes > 0.0)
        {
            return Err(format!(
                "time_budget_minutes must be positive, got {minutes}"
            ));
        }
        let warmup = self.schedule.warmup_epochs;
        let warmup_ok = warmup.is_finite() && warmup >= 0.0;
        let fractions = [
            self.schedule.final_lr_fraction,
            self.schedule.start_lr_fraction,
            self.schedule.peak_fraction,
        ];
        if !warmup_ok || !fractions.iter().all(|f| (0.0..=1.0).contains(f)) {
            return Err("schedule.warmup_epochs must be at least 0 and schedule.final_lr_fraction, start_lr_fraction and peak_fraction in [0, 1]".into());
        }
        if self.augment.alternate_flip && !self.augment.flip {
            return Err("augment.alternate_flip needs augment.flip = true".into());
        }
        if !(1..=MAX_IMAGE_SIZE).contains(&self.data.image_size) {
            return Err(format!(
                "data.image_size must be between 1 and {MAX_IMAGE_SIZE} (every image is held in memory at this size), got {}",
                self.data.image_size
            ));
        }
        if self.test_time_translate >= self.data.image_size {
            return Err(format!(
                "test_time_translate must be smaller than data.image_size ({}), got {}",
                self.data.image_size, self.test_time_translate
            ));
        }
        self.model.check()?;
        self.check_optimizer()?;
        if !self.optimizer.lr.is_finite() || self.optimizer.lr <= 0.0 {
            return Err(format!(
                "optimizer.lr must be positive, got {}",
                self.optimizer.lr
            ));
        }
        Ok(())
    }

    /// The `[optimizer]` keys beyond the rate.
    fn check_optimizer(&self) -> Result<(), String> {
        let optimizer = &self.optimizer;
        if optimizer.per_1024_examples
            && !(optimizer.name == OptimizerName::Sgd && (0.0..1.0).contains(&optimizer.momentum))
        {
            return Err(
                "optimizer.per_1024_examples is SGD's, with optimizer.momentum in [0, 1)".into(),
            );
        }
        let scale = optimizer.batch_norm_bias_lr_scale;
        if !(scale.is_finite() && scale > 0.0) {
            return Err(format!(
                "optimizer.batch_norm_bias_lr_scale must be positive, got {scale}"
            ));
        }
        Ok(())
    }

    /// The `[transfer]` keys, for a network with a pretrained backbone.
    fn check_transfer(&self) -> Result<(), String> {
        let Some(pretrained) = self.model.pretrained() else {
            return Ok(());
        };
        let min_side = self.model.input().min_side;
        let (resolution, batch) = (self.transfer.resolution, self.transfer.extract_batch_size);
        if !(min_side..=MAX_IMAGE_SIZE).contains(&resolution) || batch == 0 {
            return Err(format!(
                "transfer.resolution must be between {min_side} and {MAX_IMAGE_SIZE} and transfer.extract_batch_size at least 1, got {resolution} and {batch}"
            ));
        }
        let blocks = pretrained.lite.blocks();
        if self.transfer.train_blocks > blocks || self.transfer.finetune_blocks > blocks {
            return Err(format!(
                "transfer.train_blocks and transfer.finetune_blocks count {}'s last blocks: at most {blocks}",
                self.model.name()
            ));
        }
        if self.test_time_translate > 0 {
            return Err("test_time_translate shifts images, which the transfer recipe's cached features are not; use test_time_flip".into());
        }
        let augment = &self.augment;
        if augment.translate > 0 || augment.cutout > 0 || augment.alternate_flip {
            return Err("the transfer recipe trains on what its frozen part computed once from each image (and from its mirror image, with augment.flip): set augment.translate and augment.cutout to 0 and augment.alternate_flip to false".into());
        }
        Ok(())
    }

    /// The config as TOML, as written into every run directory.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a config always serializes")
    }
}

/// Keys that moved, taken to their new place, so that run directories written before still
/// resume: `transfer.mirrored_training` is `augment.flip` (which transfer runs used to ignore).
fn moved_keys(table: &mut toml::Table) {
    let mirrored = table
        .get_mut("transfer")
        .and_then(toml::Value::as_table_mut)
        .and_then(|transfer| transfer.remove("mirrored_training"));
    if let Some(flip) = mirrored
        && let Some(augment) = table
            .entry("augment")
            .or_insert_with(|| toml::Table::new().into())
            .as_table_mut()
    {
        augment.insert("flip".into(), flip);
    }
}

/// A TOML syntax error's message with where it is, as one line.
fn located(text: &str, error: &toml::de::Error) -> String {
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {}", error.message().trim())
        }
        None => error.message().trim().to_string(),
    }
}

/// A TOML value, or the text itself as a string (so `--set data.dir=/some/path` needs no quotes).
fn parse_value(text: &str) -> toml::Value {
    format!("v = {text}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_string()))
}

fn set_dotted(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    match key.split_once('.') {
        None => {
            table.insert(key.to_string(), value);
            Ok(())
        }
        Some((head, rest)) => match table
            .entry(head.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        {
            toml::Value::Table(inner) => set_dotted(inner, rest, value),
            _ => Err(format!("{head} is not a table")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_the_tutorial() {
        let config = TrainConfig::parse("", &[]).unwrap();
        assert_eq!(config, TrainConfig::default());
        assert_eq!(
            (config.epochs, config.batch_size, config.valid_size),
            (20, 128, 0.25)
        );
    }

    /// The message of the error that parsing `text` with `overrides` gives.
    fn parse_error(text: &str, overrides: &[String]) -> String {
        TrainConfig::parse(text, overrides).unwrap_err().to_string()
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = parse_error("epoch = 3", &[]);
        assert!(err.contains("unknown field `epoch`"), "{err}");
        let err = parse_error("[optimizer]\nrate = 3", &[]);
        assert!(err.contains("unknown field `rate`"), "{err}");
    }

    #[test]
    fn overrides_reach_nested_keys() {
        let overrides =
            ["optimizer.lr=0.01", "data.dir=/tmp/my images", "epochs=2"].map(String::from);
        let config = TrainConfig::parse("epochs = 5", &overrides).unwrap();
        assert_eq!(config.optimizer.lr, 0.01);
        assert_eq!(config.data.dir, Some(PathBuf::from("/tmp/my images")));
        assert_eq!(config.epochs, 2);
        let err = parse_error("", &["nonsense".into()]);
        assert!(err.contains("expected key=value"), "{err}");
        let err = parse_error("label_smoothing = 1.5", &[]);
        assert!(err.contains("label_smoothing must be in [0, 1)"), "{err}");
        let err = parse_error("test_time_translate = 32", &[]);
        assert!(err.contains("test_time_translate must be smaller"), "{err}");
        let transfer = ["model.name=\"efficientnet_lite0\"".to_string()];
        let err = parse_error("test_time_translate = 2", &transfer);
        assert!(err.contains("use test_time_flip"), "{err}");
        let err = parse_error("[transfer]\ntrain_blocks = 17", &transfer);
        assert!(err.contains("at most 16"), "{err}");
        for augment in [
            "translate = 2",
            "cutout = 8",
            "flip = true\nalternate_flip = true",
        ] {
            let err = parse_error(&format!("[augment]\n{augment}"), &transfer);
            assert!(
                err.contains("set augment.translate and augment.cutout to 0"),
                "{err}"
            );
        }
        let flips = TrainConfig::parse("[augment]\nflip = true", &transfer);
        assert!(flips.is_ok(), "a transfer run takes flips: {flips:?}");
        let before = "[augment]\nflip = false\n[transfer]\nmirrored_training = true";
        let moved = TrainConfig::parse(before, &transfer).unwrap();
        assert!(
            moved.augment.flip,
            "an older run's mirrored_training is its flip"
        );
        let err = parse_error("[augment]\nalternate_flip = true", &[]);
        assert!(err.contains("augment.alternate_flip needs"), "{err}");
        let err = parse_error(
            "[model]\nname = \"fastnet\"\nwhiten = true\nwidths = [7, 8, 8, 8]",
            &[],
        );
        assert!(err.contains("model.whiten needs an even"), "{err}");
        let err = parse_error("", &["data.nope=1".into()]);
        assert!(err.contains("unknown field `nope`"), "{err}");
        let err = parse_error("valid_size = 0", &[]);
        assert!(err.contains("early_stopping_patience = 0"), "{err}");
        let err = parse_error("ema_decay = 0.9\nlookahead_steps = 5", &[]);
        assert!(err.contains("set one of them to 0"), "{err}");
        let err = parse_error("[optimizer]\nper_1024_examples = true", &[]);
        assert!(err.contains("is SGD's"), "{err}");
        let err = parse_error("[schedule]\npeak_fraction = 1.5", &[]);
        assert!(err.contains("peak_fraction in [0, 1]"), "{err}");
    }

    #[test]
    fn matmul_precision_is_float32_or_bfloat16() {
        let config = TrainConfig::parse("matmul_precision = \"bfloat16\"", &[]).unwrap();
        assert_eq!(config.matmul_precision, MatmulPrecision::Bfloat16);
        let overridden = ["matmul_precision=float32".to_string()];
        let config = TrainConfig::parse("matmul_precision = \"bfloat16\"", &overridden).unwrap();
        assert_eq!(config.matmul_precision, MatmulPrecision::Float32);
        let err = parse_error("matmul_precision = \"float16\"", &[]);
        assert!(err.contains("unknown variant `float16`"), "{err}");
    }

    #[test]
    fn a_syntax_error_says_where() {
        let err = parse_error("epochs = 3\nbatch_size = = 4\n", &[]);
        assert!(err.contains("line 2, column"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn image_sizes_are_bounded_and_named() {
        for size in ["0", "32768"] {
            let err = parse_error(&format!("[data]\nimage_size = {size}"), &[]);
            assert!(
                err.contains("data.image_size must be between 1 and 1024"),
                "{err}"
            );
        }
        let transfer = ["model.name=\"efficientnet_lite0\"".to_string()];
        let err = parse_error("[transfer]\nresolution = 32768", &transfer);
        assert!(
            err.contains("transfer.resolution must be between 32 and 1024"),
            "{err}"
        );
    }

    #[test]
    fn each_network_takes_its_own_keys() {
        let err = parse_error("[model]\nname = \"convnet\"\nwidths = [8, 8, 8, 8]", &[]);
        assert!(err.contains("unknown field `widths`"), "{err}");
        let err = parse_error("[model]\nname = \"resnet\"", &[]);
        assert!(err.contains("efficientnet_lite2"), "{err}");
        let lite1 = ["model.name=\"efficientnet_lite1\"".to_string()];
        let config = TrainConfig::parse("[transfer]\ntrain_blocks = 21", &lite1).unwrap();
        assert_eq!(config.model.name(), "efficientnet_lite1");
        let err = parse_error("[transfer]\ntrain_blocks = 22", &lite1);
        assert!(err.contains("at most 21"), "{err}");
    }

    #[test]
    fn rates_per_1024_examples_become_burns_per_batch() {
        let config = TrainConfig::parse(
            "[optimizer]\nname = \"sgd\"\nper_1024_examples = true\nlr = 11.5\nweight_decay = 0.0153\nmomentum = 0.85",
            &[],
        )
        .unwrap();
        // airbench's numbers at batch 1,024: a step of 1.5 times the mean gradient, a decay of
        // 0.0153 / 7.667 ≈ 0.002 a step.
        let burns = config.optimizer.per_batch(1024);
        assert!((burns.lr - 1.5).abs() < 1e-12, "{}", burns.lr);
        let decay = burns.lr * f64::from(burns.weight_decay);
        assert!(
            (decay - 0.0153 / (1.0 + 1.0 / 0.15)).abs() < 1e-8,
            "{decay}"
        );
        // Half the batch, half the step: the same per example.
        assert!((config.optimizer.per_batch(512).lr - 0.75).abs() < 1e-12);
        let plain = TrainConfig::default().optimizer;
        assert_eq!(plain.per_batch(1024), plain);
    }

    #[test]
    fn the_shipped_configs_parse_and_the_documented_one_holds_the_defaults() {
        let documented = include_str!("../../../configs/cifar.toml");
        assert_eq!(
            TrainConfig::parse(documented, &[]).unwrap(),
            TrainConfig::default()
        );
        for text in [
            include_str!("../../../configs/cifar-airbench.toml"),
            include_str!("../../../configs/cifar-fast.toml"),
            include_str!("../../../configs/cifar-frozen.toml"),
            include_str!("../../../configs/cifar-transfer.toml"),
        ] {
            TrainConfig::parse(text, &[]).unwrap();
        }
    }

    #[test]
    fn resolved_config_round_trips() {
        let config = TrainConfig::parse("seed = 7\n[optimizer]\nname = \"sgd\"", &[]).unwrap();
        assert_eq!(TrainConfig::parse(&config.to_toml(), &[]).unwrap(), config);
    }
}
