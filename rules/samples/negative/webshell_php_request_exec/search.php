<?php echo htmlspecialchars($_GET["q"], ENT_QUOTES); ?>
