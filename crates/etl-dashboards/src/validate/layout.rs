//! The grid layout checks of `validate`: one layout per sheet, every visual placed once,
//! spans within QuickSight's bounds, inside the 36 columns, no overlaps.

use super::Validator;
use std::collections::BTreeSet;

impl Validator {
    pub(super) fn layout(
        &mut self,
        sheet: &crate::model::Sheet,
        sp: &str,
        visual_ids: &BTreeSet<String>,
    ) {
        if sheet.layouts.len() != 1 {
            self.issue(
                format!("{sp}.Layouts"),
                format!(
                    "has {} layouts; a sheet has exactly one",
                    sheet.layouts.len()
                ),
            );
        }
        let Some(layout) = sheet.layouts.first() else {
            return;
        };
        let mut placed = BTreeSet::new();
        let mut cells: Vec<(usize, u32, u32, u32, u32)> = Vec::new();
        for (i, e) in layout.configuration.grid_layout.elements.iter().enumerate() {
            let ep = format!("{sp}.Layouts[0].Configuration.GridLayout.Elements[{i}]");
            if !visual_ids.contains(&e.element_id) {
                self.issue(
                    format!("{ep}.ElementId"),
                    format!("`{}` is not a visual of this sheet", e.element_id),
                );
            } else if !placed.insert(e.element_id.clone()) {
                self.issue(
                    format!("{ep}.ElementId"),
                    format!("`{}` is placed twice", e.element_id),
                );
            }
            if e.element_type != "VISUAL" {
                self.issue(
                    format!("{ep}.ElementType"),
                    format!("`{}`: only VISUAL elements are used", e.element_type),
                );
            }
            if !(1..=36).contains(&e.column_span) {
                self.issue(
                    format!("{ep}.ColumnSpan"),
                    format!("{} is outside 1-36", e.column_span),
                );
            }
            if !(1..=21).contains(&e.row_span) {
                self.issue(
                    format!("{ep}.RowSpan"),
                    format!("{} is outside 1-21", e.row_span),
                );
            }
            if let Some(c) = e.column_index {
                if c > 35 || c + e.column_span > 36 {
                    self.issue(
                        format!("{ep}.ColumnIndex"),
                        format!(
                            "columns {c}..{} do not fit the 36 columns of the grid",
                            c + e.column_span
                        ),
                    );
                }
            }
            if let (Some(c), Some(r)) = (e.column_index, e.row_index) {
                for &(j, c2, r2, w2, h2) in &cells {
                    if c < c2 + w2 && c2 < c + e.column_span && r < r2 + h2 && r2 < r + e.row_span {
                        self.issue(
                            ep.clone(),
                            format!(
                                "`{}` overlaps element {j} (`{}`)",
                                e.element_id,
                                layout.configuration.grid_layout.elements[j].element_id
                            ),
                        );
                    }
                }
                cells.push((i, c, r, e.column_span, e.row_span));
            }
        }
        for id in visual_ids.difference(&placed) {
            self.issue(
                format!("{sp}.Layouts[0].Configuration.GridLayout.Elements"),
                format!("visual `{id}` has no layout element"),
            );
        }
    }
}
