//! The 1,000 ILSVRC-2012 classes in the order of the network's outputs.

const CLASSES_TSV: &str = include_str!("../imagenet-classes.tsv");

/// Short labels: the first name of each class (`n01882714<TAB>koala, koala bear, …` → `koala`).
pub fn labels() -> Vec<String> {
    CLASSES_TSV
        .lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let names = line.split_once('\t').map_or(line, |(_, names)| names);
            names.split(',').next().unwrap_or(names).trim().to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_thousand_short_labels() {
        let labels = super::labels();
        assert_eq!(labels.len(), 1000);
        assert_eq!(labels[105], "koala");
    }
}
